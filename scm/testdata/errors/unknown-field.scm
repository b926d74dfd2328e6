(list (build-machine
        (nam "a")
        (systems '("x86_64-linux"))
        (user "u")
        (host-key "k")))
