;; Strings with Guile's escapes and non-ASCII characters.
(list (build-machine
        (name "caf\u00e9.example.org")
        (systems (list "x86_64-linux"))
        (user "\x41lice")
        (private-key "/root/.ssh/with \"quotes\" and \\backslash")
        (host-key "ssh-ed25519 AAAA\
C3Nza comment\twith tab")
        (compression "zlib@openssh.com,\
zlib")
        (features (list "λ" "line\nbreak" "\U01F600"))))
