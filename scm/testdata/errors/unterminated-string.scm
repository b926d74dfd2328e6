(list (build-machine
        (name "a)
        (user "u")))
