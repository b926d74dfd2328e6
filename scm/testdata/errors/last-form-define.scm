(define machines
  (list (build-machine (name "a") (systems '("x86_64-linux")) (user "u") (host-key "k"))))
