;; Only the last top-level form counts, as with primitive-load.
(list (build-machine (name "ignored") (systems '("x")) (user "u") (host-key "k")))
(define x 1)
"a string"
(list (build-machine (name "counted") (systems '("x86_64-linux")) (user "u") (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))
