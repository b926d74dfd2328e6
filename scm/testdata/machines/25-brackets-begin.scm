;; Square brackets and begin.
(let ([user "u"] [systems '("x86_64-linux")])
  (begin
    (define unused 1)
    (list (build-machine [name "brackets"] [systems systems] [user user] [host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86"]))))
