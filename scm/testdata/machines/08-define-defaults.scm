;; Shared defaults in variables, a helper procedure for the machines.
(define %user "offload")
(define %key "/root/.ssh/offload")
(define %systems '("x86_64-linux" "i686-linux"))

(define (machine name host-key)
  (build-machine
    (name name)
    (systems %systems)
    (user %user)
    (private-key %key)
    (host-key host-key)))

(list (machine "one.lan" "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")
      (machine "two.lan" "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 root@arm"))
