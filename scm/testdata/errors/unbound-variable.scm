(define systems '("x86_64-linux"))
(list (build-machine
        (name "a")
        (systems sytems)
        (user "u")
        (host-key "k")))
