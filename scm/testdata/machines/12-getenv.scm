;; getenv: a variable the test sets, and one that is never set.
(define user (getenv "GUIX_OFFLOAD_TEST_USER"))
(define missing (getenv "GUIX_OFFLOAD_TEST_NEVER_SET"))
(list (build-machine
        (name "env.example.org")
        (systems (list "x86_64-linux"))
        (user (if missing "wrong" user))
        (private-key (string-append (getenv "HOME") "/.ssh/id_ed25519"))
        (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))
