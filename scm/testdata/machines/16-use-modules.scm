;; use-modules is accepted; Guix's own modules need not exist here.
(use-modules (gnu)
             (guix)
             (srfi srfi-1))
(list (build-machine
        (name "modules.example.org")
        (systems (list "x86_64-linux"))
        (user "u")
        (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))
