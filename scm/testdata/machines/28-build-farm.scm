;;; A small build farm: shared defaults through inherit, one entry per
;;; system via map, a dedicated KVM machine.
(define %base
  (build-machine
    (name "template")
    (systems '("x86_64-linux"))
    (user "offload")
    (private-key "/root/.ssh/offload_ed25519")
    (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")
    (compression "zlib@openssh.com")
    (parallel-builds 2)))

(define (x86 name key speed)
  (build-machine (inherit %base) (name name) (host-key key) (speed speed)
                 (systems '("x86_64-linux" "i686-linux"))))

(append
 (list (x86 "hydra-1.lan" "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86" 2.0)
       (x86 "hydra-2.lan" "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 root@arm" 1.5)
       (build-machine (inherit %base) (name "kvm.lan") (features '("kvm" "big-parallel"))
                      (parallel-builds 16) (overload-threshold 0.9)))
 (map (lambda (system)
        (build-machine (inherit %base) (name "arm.lan") (systems (list system))
                       (speed 0.5)))
      '("aarch64-linux" "armhf-linux")))
