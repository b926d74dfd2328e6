(define a (build-machine (name "a") (systems '("x86_64-linux")) (user "u") (host-key "k")))
(list (build-machine (name "b") (inherit a)))
