;;; Comments of all three kinds.
#| A block comment
   #| nested |#
   (list (build-machine (name "commented-out")))
|#
(list
 ;; A line comment before the machine.
 (build-machine
   (name "visible") ; trailing comment
   (systems (list "x86_64-linux" #;"i686-linux"))
   #;(port 2222)
   (user "u")
   (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86"))
 #;(build-machine (name "disabled") (user "u") (host-key "k")))
