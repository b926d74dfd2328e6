#!/usr/bin/guile \
-s
!#
;; A script header is a comment to Guile's reader.
(list (build-machine (name "script") (systems '("x86_64-linux")) (user "u") (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))
