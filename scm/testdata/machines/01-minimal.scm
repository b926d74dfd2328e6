;; The smallest useful file: the required fields and the systems.
(list (build-machine
        (name "builder.example.org")
        (systems (list "x86_64-linux"))
        (user "offload")
        (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))
