;; The user field is required.
(list
 (build-machine
   (name "a")
   (systems '("x86_64-linux"))
   (host-key "ssh-ed25519 AAAA")))
