;; Names built with number->string from integers, rationals and reals.
(define (node n)
  (build-machine
    (name (string-append "node" (number->string n) ".lan"))
    (systems (list "x86_64-linux"))
    (user "u")
    (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))
(list (node 1) (node 42) (node -7) (node 3/4) (node 2.5) (node 1e7)
      (node 12345000.) (node 1.5e-4) (node 0.001) (node 100.)
      (build-machine (inherit (node 0)) (name (number->string 255 16))))
