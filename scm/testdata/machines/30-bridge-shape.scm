;; The bridge shape: static machines appended to a (here empty) list that a
;; command would produce.
(define static
  (list (build-machine (name "static") (systems '("x86_64-linux")) (user "u") (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86"))))
(define discovered '())
(append static discovered)
