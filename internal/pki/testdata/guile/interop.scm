;; Real libgcrypt (through Debian's guile-gcrypt, as Guix uses it) on the
;; other side of internal/pki's interoperability tests.
;;
;;   guile-3.0 interop.scm gen DIR     make keys and signatures the way
;;                                     'guix archive --generate-key' and
;;                                     'guix authenticate' do
;;   guile-3.0 interop.scm verify DIR  check every DIR/go/*.sig made by Go
;;                                     the way Guix's valid-signature? does
(use-modules (gcrypt pk-crypto) (gcrypt hash) (gcrypt base16)
             (rnrs bytevectors) ((rnrs io ports) #:select (put-bytevector get-bytevector-all))
             ((ice-9 iconv) #:select (bytevector->string)) (system foreign)
             (ice-9 match) (ice-9 ftw))

;; Canonical form, through libgcrypt's own printer (mode 1).
(define %sprint
  (pointer->procedure size_t
                      (dynamic-func "gcry_sexp_sprint" (dynamic-link "libgcrypt"))
                      (list '* int '* size_t)))
(define (canonical sexp)
  (let* ((buf (make-bytevector 65536))
         (n (%sprint ((@@ (gcrypt pk-crypto) canonical-sexp->pointer) sexp)
                     1 (bytevector->pointer buf) 65536))
         (out (make-bytevector n)))
    (bytevector-copy! buf 0 out 0 n)
    out))

;; Octet for octet, as 'guix authenticate' prints (ISO-8859-1): in the
;; locale's encoding, octets 0xA1-0xFF that libgcrypt leaves in quoted
;; strings would become UTF-8, or "?" in the C locale.
(define (write-text file str)
  (call-with-output-file file
    (lambda (p)
      (set-port-encoding! p "ISO-8859-1")
      (set-port-conversion-strategy! p 'error)
      (display str p))))
(define (write-bytes file bv)
  (call-with-output-file file (lambda (p) (put-bytevector p bv)) #:binary #t))
(define (read-sexp file)
  (string->canonical-sexp
   (bytevector->string (call-with-input-file file get-bytevector-all #:binary #t)
                       "ISO-8859-1")))

;; As guix/pki.scm's signature-sexp does.
(define (signature-sexp data secret public)
  (string->canonical-sexp
   (format #f "(signature ~a ~a ~a)"
           (canonical-sexp->string data)
           (canonical-sexp->string (sign data secret))
           (canonical-sexp->string public))))

(define (hash-data kind hash)
  (match kind
    ("ecdsa" (bytevector->hash-data hash #:key-type 'ecc))
    ("rsa" (bytevector->hash-data hash #:key-type 'rsa))
    ;; libgcrypt cannot sign Guix's (hash sha256 …) data with an EdDSA
    ;; key; it signs the digest as the message.
    ("eddsa" (string->canonical-sexp
              (format #f "(data (flags eddsa) (hash-algo sha512) (value #~a#))"
                      (bytevector->base16-string hash))))))

(define %parameters
  `(("ecdsa" . "(genkey (ecdsa (curve Ed25519) (flags rfc6979)))") ; guix archive --generate-key
    ("eddsa" . "(genkey (ecc (curve Ed25519) (flags eddsa)))")
    ("rsa" . "(genkey (rsa (nbits 4:2048)))")))

(define (generate dir)
  (for-each
   (match-lambda
     ((kind . params)
      (let* ((pair (generate-key (string->canonical-sexp params)))
             (public (find-sexp-token pair 'public-key))
             (secret (find-sexp-token pair 'private-key))
             (base (string-append dir "/" kind)))
        (write-text (string-append base ".pub") (canonical-sexp->string public))
        (write-text (string-append base ".sec") (canonical-sexp->string secret))
        (write-bytes (string-append base ".pub.canon") (canonical public))
        (write-bytes (string-append base ".sec.canon") (canonical secret))
        (for-each
         (lambda (i)
           (let* ((hash (sha256 (string->utf8 (format #f "~a item ~a" kind i))))
                  (sig (signature-sexp (hash-data kind hash) secret public))
                  (file (format #f "~a.~a" base i)))
             (write-text (string-append file ".hash") (bytevector->base16-string hash))
             (write-text (string-append file ".sig") (canonical-sexp->string sig))
             (write-bytes (string-append file ".sig.canon") (canonical sig))))
         '(0 1 2)))))
   %parameters))

;; As guix/pki.scm's valid-signature? does.
(define (valid? file)
  (catch #t
    (lambda ()
      (let* ((sig (read-sexp file))
             (data (find-sexp-token sig 'data))
             (value (find-sexp-token sig 'sig-val))
             (key (find-sexp-token sig 'public-key)))
        (if (and data value key (verify value data key)) "valid" "invalid")))
    (lambda args "error")))

(define (check dir)
  (let ((go (string-append dir "/go")))
    (for-each (lambda (name)
                (when (string-suffix? ".sig" name)
                  (format #t "~a ~a~%" name (valid? (string-append go "/" name)))))
              (scandir go))))

(match (command-line)
  ((_ "gen" dir) (generate dir))
  ((_ "verify" dir) (check dir)))
