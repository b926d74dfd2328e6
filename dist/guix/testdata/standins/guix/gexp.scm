;;; Stand-in for (guix gexp): #~EXP reads as a gexp record whose body is
;;; EXP with #$X and #$@X evaluated (quasiquote's unquote and
;;; unquote-splicing), and file-append.  See ../README.
(define-module (guix gexp)
  #:use-module (srfi srfi-9)
  #:export (make-gexp gexp? gexp-body
            file-append file-append? file-append-base file-append-suffix))

(define-record-type <gexp>
  (make-gexp body)
  gexp?
  (body gexp-body))

(define-record-type <file-append>
  (make-file-append base suffix)
  file-append?
  (base file-append-base)
  (suffix file-append-suffix))

(define (file-append base . suffix)
  (make-file-append base (apply string-append suffix)))

(read-hash-extend #\~
                  (lambda (chr port)
                    (list 'make-gexp (list 'quasiquote (read port)))))
(read-hash-extend #\$
                  (lambda (chr port)
                    (if (eqv? (peek-char port) #\@)
                        (begin
                          (read-char port)
                          (list 'unquote-splicing (read port)))
                        (list 'unquote (read port)))))
