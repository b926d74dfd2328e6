;; No static machines at all.
'()
