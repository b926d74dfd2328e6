;;; Stand-in for (guix records): define-record-type* with (default EXPR)
;;; fields and (inherit RECORD).  See ../README.
(define-module (guix records)
  #:use-module (srfi srfi-9)
  #:export (define-record-type*))

(define-syntax field-default
  (syntax-rules (default)
    ((_) #f)                                      ;required field
    ((_ (default expr) rest ...) (lambda () expr))
    ((_ other rest ...) (field-default rest ...))))

(define (build type-name make names getters base given defaults)
  (for-each (lambda (pair)
              (unless (memq (car pair) names)
                (error "record: unknown field" type-name (car pair))))
            given)
  (apply make
         (map (lambda (name getter)
                (cond ((assq name given) => (lambda (p) ((cdr p))))
                      (base (getter base))
                      ((cdr (assq name defaults)) => (lambda (thunk) (thunk)))
                      (else (error "record: missing field" type-name name))))
              names getters)))

(define-syntax define-record-type*
  (lambda (s)
    (syntax-case s ()
      ((_ type name make pred (field get spec ...) ...)
       #'(begin
           (define-record-type type (make field ...) pred (field get) ...)
           (define-syntax name
             (syntax-rules (inherit)
               ((_ (inherit base) (f v) (... ...))
                (build 'name make '(field ...) (list get ...) base
                       (list (cons 'f (lambda () v)) (... ...))
                       (list (cons 'field (field-default spec ...)) ...)))
               ((_ (f v) (... ...))
                (build 'name make '(field ...) (list get ...) #f
                       (list (cons 'f (lambda () v)) (... ...))
                       (list (cons 'field (field-default spec ...)) ...))))))))))
