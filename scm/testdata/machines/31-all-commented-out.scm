;; A real-world shape: every machine commented out, one way or another.
(list

 ;; (build-machine
 ;;  (name "jenkins.example.org")
 ;;  (systems '("x86_64-linux"))
 ;;  (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGDngvW1IgUSW4Lna7tOoDBsC2sG+IlpDfYCe1wBVMp2")
 ;;  (user "eng")
 ;;  (speed 2.0))

 #;(build-machine
  (name "vm1.example.org")
  (systems '("x86_64-linux"))
  (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICnqb74jWKmirhfbXKrt047ECzaSiCsZ4j3mYpTSbYEa root@gnu")
  (user "oleg")
  (private-key "/home/oleg/.ssh/id_rsa")
  (speed 2.0))

 #|(build-machine
  (name "vm2.example.org")
  (systems '("x86_64-linux"))
  (user "oleg"))|#
)
