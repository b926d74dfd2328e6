(list
  (build-machine (name "a") (user "u") (host-key "k")))
