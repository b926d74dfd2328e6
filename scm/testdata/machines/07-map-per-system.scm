;; One machine entry per system type, as the Guix manual suggests for
;; builders that run several systems with different speeds.
(define (builder system speed)
  (build-machine
    (name "multi.example.org")
    (systems (list system))
    (user "offload")
    (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")
    (speed speed)))

(map (lambda (system) (builder system 1.5))
     '("x86_64-linux" "i686-linux" "aarch64-linux"))
