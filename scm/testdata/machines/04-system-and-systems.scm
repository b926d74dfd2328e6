;; When both are given, 'systems' wins, as in Guix.
(list (build-machine
        (name "both.example.org")
        (system "i686-linux")
        (systems '("x86_64-linux" "i686-linux"))
        (user "bob")
        (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))
