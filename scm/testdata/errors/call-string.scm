(list ("build-machine" (name "a")))
