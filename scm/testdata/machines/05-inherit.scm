;; inherit copies every field of another machine, then overrides some.
(define base
  (build-machine
    (name "a.example.org")
    (systems (list "x86_64-linux"))
    (user "offload")
    (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")
    (speed 2.)
    (features '("kvm"))))

(list base
      (build-machine
        (inherit base)
        (name "b.example.org")
        (host-key "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 root@arm")
        (parallel-builds 4)))
