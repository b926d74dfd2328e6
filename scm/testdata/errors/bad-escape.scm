(list (build-machine (name "a\qb") (systems '("x86_64-linux")) (user "u") (host-key "k")))
