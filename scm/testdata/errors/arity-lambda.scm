(define (machine name key)
  (build-machine (name name) (systems '("x86_64-linux")) (user "u") (host-key key)))
(list (machine "a"))
