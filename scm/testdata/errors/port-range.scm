(list (build-machine (name "a") (port 70000) (systems '("x86_64-linux")) (user "u") (host-key "k")))
