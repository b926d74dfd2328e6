;; The deprecated 'system' field becomes a one-element 'systems' list.
(list (build-machine
        (name "old.example.org")
        (system "armhf-linux")
        (user "bob")
        (host-key "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 root@arm")))
