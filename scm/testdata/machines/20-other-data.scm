;; Characters, keywords, vectors and booleans may appear in the file.
(define chars (list #\a #\space #\x41 #\newline))
(define opts '(#:kvm? #t #:fast #false))
(define v #(1 2 3))
(define yes #true)
(list (build-machine
        (name (if yes "data" "no"))
        (systems (if (equal? v #(1 2 3)) '("x86_64-linux") '()))
        (user (if (equal? chars (list #\a #\  #\A #\newline)) "u" "x"))
        (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")
        (features (if (equal? (car (cdr opts)) #t) '("kvm") '()))))
