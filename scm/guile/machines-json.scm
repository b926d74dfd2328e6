;;; machines-json.scm — part of guix-offload (GPL-3.0-or-later).
;;;
;;; Evaluate a machines.scm file the way Guix's offload hook does
;;; (primitive-load in a fresh user module where build-machine is bound)
;;; and print its build machines as a JSON array whose keys are Guix's
;;; field names, with Guix's defaults applied.  It checks the same field
;;; types as guix-offload's built-in evaluator.
;;;
;;; Usage: guile --no-auto-compile -s machines-json.scm FILE
;;; Exit status 0 with JSON on stdout, or 1 with "FILE:LINE:COL: message"
;;; (or Guile's own error) on stderr.  Output of the file itself goes to
;;; stderr so that stdout holds only the JSON.

(use-modules (ice-9 match) (srfi srfi-1) (srfi srfi-9))

(define %gom-fields
  '(name port systems system user private-key host-key compression
    compression-level daemon-socket overload-threshold parallel-builds
    speed features))

;; A build machine: the fields as given or inherited (an alist), and the
;; location of its build-machine form.
(define-record-type <%gom-machine>
  (%gom-make-machine fields loc)
  %gom-machine?
  (fields %gom-machine-fields)
  (loc %gom-machine-loc))

;; Set once a failure has been reported, so that the top-level handler
;; does not report the exit that follows as an error of its own.
(define %gom-failed? #f)

(define (%gom-fail loc fmt . args)
  (set! %gom-failed? #t)
  (let ((port (current-error-port)))
    (when loc
      (format port "~a:~a:~a: " (car loc) (cadr loc) (caddr loc)))
    (display (apply format #f fmt args) port)
    (newline port)
    (exit 1)))

(define (%gom-describe v)
  (cond ((string? v) (format #f "the string ~s" v))
        ((exact-integer? v) (format #f "the integer ~a" v))
        ((number? v) (format #f "the number ~a" v))
        ((eq? v #t) "#t")
        ((eq? v #f) "#f")
        ((symbol? v) (format #f "the symbol ~a" v))
        ((null? v) "the empty list")
        ((pair? v) "a list")
        ((procedure? v) "a procedure")
        ((%gom-machine? v) "a build-machine")
        (else (format #f "~s" v))))

(define (%gom-finite-real? v)
  (and (real? v) (or (exact? v) (not (or (nan? v) (inf? v))))))

(define (%gom-check loc field v)
  (define (bad want)
    (%gom-fail loc "build-machine: field ~a must be ~a, got ~a"
               field want (%gom-describe v)))
  (define (int-in? lo hi)
    (and (exact-integer? v) (<= lo v hi)))
  (case field
    ((name system user private-key host-key compression daemon-socket)
     (unless (string? v) (bad "a string")))
    ((systems features)
     (unless (list? v) (bad "a list of strings"))
     (for-each (lambda (x)
                 (unless (string? x)
                   (%gom-fail loc "build-machine: field ~a must be a list of strings, but it holds ~a"
                              field (%gom-describe x))))
               v))
    ((port) (unless (int-in? 1 65535) (bad "an integer from 1 to 65535")))
    ((compression-level) (unless (int-in? 0 9) (bad "an integer from 0 to 9")))
    ((parallel-builds)
     (unless (int-in? 0 (expt 2 20)) (bad "a non-negative integer")))
    ((speed) (unless (%gom-finite-real? v) (bad "a real number")))
    ((overload-threshold)
     (unless (or (eq? v #f) (%gom-finite-real? v)) (bad "a real number or #f")))))

;; CLAUSES is a list of (FIELD . VALUE) in source order, each with the
;; location of its value expression; (inherit . MACHINE) may come first.
(define (%gom-build-machine loc clauses)
  (let loop ((clauses clauses) (fields '()) (first? #t) (seen '()))
    (match clauses
      (()
       (let ((missing (filter (lambda (f) (not (assq f fields)))
                              '(name user host-key))))
         (unless (null? missing)
           (%gom-fail loc "build-machine: missing field~a ~a"
                      (if (> (length missing) 1) "s" "")
                      (string-join (map symbol->string missing) ", "))))
       (unless (or (assq 'systems fields) (assq 'system fields))
         (%gom-fail loc "build-machine: missing field systems"))
       (%gom-make-machine fields loc))
      ((('inherit value vloc) . rest)
       (unless first?
         (%gom-fail vloc "build-machine: (inherit …) must be the first clause"))
       (unless (%gom-machine? value)
         (%gom-fail vloc "build-machine: inherit needs a build machine, got ~a"
                    (%gom-describe value)))
       (loop rest (%gom-machine-fields value) #f seen))
      (((field value vloc) . rest)
       (unless (memq field %gom-fields)
         (%gom-fail vloc "build-machine: unknown field ~a" field))
       (when (memq field seen)
         (%gom-fail vloc "build-machine: field ~a is given twice" field))
       (%gom-check vloc field value)
       (loop rest (cons (cons field value)
                        (alist-delete field fields eq?))
             #f (cons field seen))))))

(define (%gom-location stx)
  (let ((src (syntax-source stx)))
    (and src
         (list (or (assq-ref src 'filename) "?")
               (+ 1 (or (assq-ref src 'line) 0))
               (+ 1 (or (assq-ref src 'column) 0))))))

(define-syntax build-machine
  (lambda (x)
    (syntax-case x ()
      ((_ clause ...)
       (with-syntax ((loc (datum->syntax x (%gom-location x)))
                     ((item ...)
                      (map (lambda (c)
                             (syntax-case c ()
                               ((field value)
                                (identifier? #'field)
                                (with-syntax ((vloc (datum->syntax
                                                     c (%gom-location c))))
                                  #'(list 'field value 'vloc)))
                               (_ (syntax-violation
                                   'build-machine
                                   "expected a field clause such as (name \"host\")"
                                   x c))))
                           #'(clause ...))))
         #'(%gom-build-machine 'loc (list item ...)))))))

;; use-modules that skips modules this machine lacks (say Guix's own,
;; when the file is checked on a machine without Guix), with a warning.
(define (%gom-use-module spec)
  (let ((arg (if (and (pair? spec) (pair? (car spec))) spec (list spec))))
    (catch #t
      (lambda () (process-use-modules (list arg)))
      (lambda _
        (format (current-error-port)
                "warning: module ~a is not available; ignored~%" (car arg))))))

(define-syntax gom-use-modules
  (syntax-rules ()
    ((_ spec ...) (begin (%gom-use-module 'spec) ... (if #f #f)))))

(define (%gom-resolve machine)
  ;; The record with Guix's defaults applied, as an alist in Guix's
  ;; field order.
  (define fields (%gom-machine-fields machine))
  (define (get field default)
    (match (assq field fields)
      ((_ . v) v)
      (#f default)))
  (let ((home (getenv "HOME")))
    `((name . ,(get 'name #f))
      (port . ,(get 'port 22))
      (systems . ,(get 'systems (list (get 'system #f))))
      (user . ,(get 'user #f))
      (private-key . ,(get 'private-key
                           (and home (string-append home "/.ssh/id_rsa"))))
      (host-key . ,(get 'host-key #f))
      (compression . ,(get 'compression "zlib@openssh.com,zlib"))
      (compression-level . ,(get 'compression-level 3))
      (daemon-socket . ,(get 'daemon-socket "/var/guix/daemon-socket/socket"))
      (overload-threshold . ,(get 'overload-threshold 0.8))
      (parallel-builds . ,(get 'parallel-builds 1))
      (speed . ,(get 'speed 1.0))
      (features . ,(get 'features '())))))

(define (%gom-json-string s port)
  (write-char #\" port)
  (string-for-each
   (lambda (c)
     (let ((n (char->integer c)))
       (cond ((char=? c #\") (display "\\\"" port))
             ((char=? c #\\) (display "\\\\" port))
             ((< n #x20)
              (display "\\u00" port)
              (when (< n 16) (display "0" port))
              (display (number->string n 16) port))
             (else (write-char c port)))))
   s)
  (write-char #\" port))

(define (%gom-json-value field v port)
  (cond ((memq field '(systems features))
         (display "[" port)
         (let loop ((v v) (first? #t))
           (unless (null? v)
             (unless first? (display "," port))
             (%gom-json-string (car v) port)
             (loop (cdr v) #f)))
         (display "]" port))
        ((string? v) (%gom-json-string v port))
        ((eq? v #f) (display "null" port))
        ((memq field '(speed overload-threshold))
         (display (number->string (exact->inexact v)) port))
        (else (display (number->string v) port))))

(define (%gom-json machines port)
  (display "[" port)
  (let loop ((ms machines) (first? #t))
    (unless (null? ms)
      (unless first? (display "," port))
      (newline port)
      (display "{" port)
      (let floop ((fs (%gom-resolve (car ms))) (ffirst? #t))
        (unless (null? fs)
          (unless ffirst? (display "," port))
          (%gom-json-string (symbol->string (caar fs)) port)
          (display ":" port)
          (%gom-json-value (caar fs) (cdar fs) port)
          (floop (cdr fs) #f)))
      (display "}" port)
      (loop (cdr ms) #f)))
  (newline port)
  (display "]" port)
  (newline port))

(define (%gom-main file)
  (define module (make-fresh-user-module))
  (define stdout (current-output-port))
  (module-define! module 'build-machine
                  (module-ref (current-module) 'build-machine))
  (module-define! module 'use-modules
                  (module-ref (current-module) 'gom-use-modules))
  (set-port-encoding! stdout "UTF-8")
  (fluid-set! %default-port-encoding "UTF-8")
  (let ((value
         (catch #t
           (lambda ()
             (with-output-to-port (current-error-port)
               (lambda ()
                 (save-module-excursion
                  (lambda ()
                    (set-current-module module)
                    (primitive-load file))))))
           (lambda (key . args)
             ;; One line, as Guix's hook reports a bad machines file, in
             ;; words rather than Guile's "Throw to key" for throws that
             ;; are not errors.
             (cond
              ((and (eq? key 'quit) %gom-failed?)
               (exit 1))                  ;already said why
              ((eq? key 'quit)
               (%gom-fail #f "~a: the file exits~a instead of returning a list of build machines"
                          file (match args
                                 (((? integer? code) . _) (format #f " (status ~a)" code))
                                 (_ ""))))
              (else
               (let ((text (string-trim-both
                            (call-with-output-string
                              (lambda (port)
                                (print-exception port #f key args))))))
                 (if (string-prefix? "Throw to key" text)
                     (%gom-fail #f "~a: uncaught exception ~a~a" file key
                                (if (null? args)
                                    ""
                                    (format #f " with ~s" args)))
                     (%gom-fail #f "~a: ~a" file text)))))))))
    (unless (and (list? value) (every (lambda (m) (%gom-machine? m)) value))
      (%gom-fail #f "~a: the last expression returns ~a, not a list of build machines"
                 file (if (list? value)
                          (format #f "a list holding ~a"
                                  (%gom-describe (find (lambda (m) (not (%gom-machine? m))) value)))
                          (%gom-describe value))))
    (%gom-json value stdout)))

(match (command-line)
  ((_ file) (%gom-main file))
  (_ (%gom-fail #f "usage: guile -s machines-json.scm FILE")))
