;; Procedures with rest arguments, defined both ways.
(define (machine name . features)
  (build-machine
    (name name)
    (systems (list "x86_64-linux"))
    (user "u")
    (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")
    (features features)))
(define many (lambda args args))
(define (pair a . rest) (cons a rest))
(append (many (machine "a") (machine "b" "kvm"))
        (pair (machine "c" "kvm" "big-parallel")))
