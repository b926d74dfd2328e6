;; Quasiquote builds lists of systems, features and machines.
(define extra '("i686-linux" "armhf-linux"))
(define kvm "kvm")
(define m
  (build-machine
    (name "qq.example.org")
    (systems `("x86_64-linux" ,@extra))
    (features `(,kvm "big-parallel" ,@'()))
    (user "offload")
    (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))
`(,m ,@(list (build-machine (inherit m) (name "qq2.example.org"))))
