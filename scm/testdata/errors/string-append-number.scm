(define n 3)
(list (build-machine (name (string-append "node" n)) (systems '("x86_64-linux")) (user "u") (host-key "k")))
