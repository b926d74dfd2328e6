(list (build-machine (systems '("x86_64-linux"))))
