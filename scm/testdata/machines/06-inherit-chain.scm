;; Inheriting through two levels, including the deprecated field.
(define one
  (build-machine
    (name "one")
    (system "aarch64-linux")
    (user "u")
    (host-key "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 root@arm")
    (port 2201)))
(define two (build-machine (inherit one) (name "two") (overload-threshold #f)))
(define three (build-machine (inherit two) (name "three") (systems '("x86_64-linux"))))
(define four (build-machine (inherit one) (name "four") (system "riscv64-linux")))
(list one two three four)
