(list (build-machine (name "a" "b") (systems '("x86_64-linux")) (user "u") (host-key "k")))
