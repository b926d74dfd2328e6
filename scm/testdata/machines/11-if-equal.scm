;; if, string=? and equal? choose field values.
(define arch "aarch64")
(define systems
  (if (string=? arch "aarch64")
      (list "aarch64-linux" "armhf-linux")
      (list "x86_64-linux")))
(define fast? (equal? systems '("aarch64-linux" "armhf-linux")))
(list (build-machine
        (name (if fast? "fast" "slow"))
        (systems systems)
        (user "u")
        (host-key "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 root@arm")
        (speed (if (equal? 1 1.0) 9 3))
        (parallel-builds (if (equal? (list 1 "a" 'b) '(1 "a" b)) 2 1))
        (features (if (string=? "a" "a" "a") '("x") '()))))
