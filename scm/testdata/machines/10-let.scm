;; let and let* bindings, scoping and shadowing.
(let* ((user "offload")
       (domain ".example.org")
       (host (lambda (n) (string-append n domain))))
  (let ((user "shadowed")
        (real-user user))
    (list (build-machine
            (name (host "let"))
            (systems (list "x86_64-linux"))
            (user real-user)
            (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86"))
          (build-machine
            (name (host "let2"))
            (systems (list "x86_64-linux"))
            (user user)
            (host-key "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))))
