;; Only a comment: primitive-load returns nothing useful.
