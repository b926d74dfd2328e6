;; A named let that walks an association list of hosts and keys.
(define hosts '(("a.lan" . "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86") ("b.lan" . "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 root@arm") ("c.lan" . "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOlMgjW2DXuzXSDJxTXXLv3SH5aBmgmJEnLhKvOxVn2D root@x86")))
(let loop ((hosts hosts) (acc '()))
  (if (null? hosts)
      acc
      (loop (cdr hosts)
            (cons (build-machine
                    (name (car (car hosts)))
                    (systems '("x86_64-linux"))
                    (user "u")
                    (host-key (cdr (car hosts))))
                  acc))))
