;; Internal definitions inside procedure bodies and let.
(define (make name)
  (define user "offload")
  (define (key) "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")
  (build-machine (name name) (systems '("x86_64-linux")) (user user) (host-key (key))))
(let ()
  (define a (make "a"))
  (define b (make "b"))
  (list a b))
