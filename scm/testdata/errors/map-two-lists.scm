(map (lambda (a b) a) '(1) '(2))
