(list (build-machine
        (name "a")
        (port "22")
        (systems '("x86_64-linux"))
        (user "u")
        (host-key "k")))
