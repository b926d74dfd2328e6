;; cons and append assemble the list of machines.
(define a (build-machine (name "a") (systems '("x86_64-linux")) (user "u") (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))
(define b (build-machine (name "b") (systems '("i686-linux")) (user "u") (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))
(define c (build-machine (name "c") (systems (append '("x") '() (list "y") '("z"))) (user "u") (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))
(append (cons a '()) (list b) '() (cons c (append)))
