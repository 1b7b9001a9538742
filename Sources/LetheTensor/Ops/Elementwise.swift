import CShims

// Elementwise operations with broadcasting. Each forward sits beside its backward.

extension Tensor {
    /// f(a, b) elementwise over the broadcast shape of a and b.
    @inline(__always)
    @_specialize(where T == Float)
    static func broadcastForward(_ a: Tensor, _ b: Tensor, _ f: (T, T) -> T) -> (values: [T], shape: [Int]) {
        guard let shape = Broadcast.shape(a.shape, b.shape) else {
            preconditionFailure("shapes \(a.shape) and \(b.shape) do not broadcast")
        }
        let sa = Broadcast.strides(a.shape, in: shape)
        let sb = Broadcast.strides(b.shape, in: shape)
        let out: [T] = filledArray(count: shape.reduce(1, *)) { o in
            a.storage.withUnsafeBufferPointer { x in
                b.storage.withUnsafeBufferPointer { y in
                    if a.shape == b.shape {
                        Parallel.chunks(o.count, grain: Parallel.elementGrain) { r in
                            for i in r { o[i] = f(x[i], y[i]) }
                        }
                    } else if a.shape == shape, let pattern = Broadcast.pattern(b.shape, in: shape) {
                        Tensor.spread(count: o.count, pattern) { i, j in o[i] = f(x[i], y[j]) }
                    } else if b.shape == shape, let pattern = Broadcast.pattern(a.shape, in: shape) {
                        Tensor.spread(count: o.count, pattern) { i, j in o[i] = f(x[j], y[i]) }
                    } else {
                        Broadcast.parallelForEach(shape, sa, sb) { i, ia, ib in o[i] = f(x[ia], y[ib]) }
                    }
                }
            }
        }
        return (out, shape)
    }

    /// Calls `body(i, j)` for every element i of an output of `count` elements and the element j of a
    /// broadcast operand spread over it by `pattern`, in parallel chunks of whole rows.
    @inline(__always)
    static func spread(count: Int, _ pattern: Broadcast.Pattern, _ body: (Int, Int) -> Void) {
        switch pattern {
        case .rows(let rows):
            let inner = rows == 0 ? 0 : count / rows
            Parallel.chunks(rows, grain: rowGrain(inner)) { rs in
                for r in rs { for i in (r * inner)..<((r + 1) * inner) { body(i, r) } }
            }
        case .columns(let inner):
            let rows = inner == 0 ? 0 : count / inner
            Parallel.chunks(rows, grain: rowGrain(inner)) { rs in
                for r in rs { for j in 0..<inner { body(r * inner + j, j) } }
            }
        }
    }

    /// out = f(a, b) with broadcasting; `da`/`db` give d out / d a and d out / d b at each element.
    @inline(__always)
    @_specialize(where T == Float)
    static func binary(
        _ a: Tensor, _ b: Tensor, _ f: (T, T) -> T,
        da: @escaping (T, T) -> T, db: @escaping (T, T) -> T
    ) -> Tensor {
        let (out, shape) = broadcastForward(a, b, f)
        let sa = Broadcast.strides(a.shape, in: shape)
        let sb = Broadcast.strides(b.shape, in: shape)
        let needA = a.requiresGrad
        let needB = b.requiresGrad
        let same = a.shape == b.shape
        return make(out, shape: shape, inputs: [a, b]) { g in
            /// g * d(x[ia], y[ib]) at every output element.
            func partial(_ d: @escaping (T, T) -> T) -> [T] {
                filledArray(count: out.count) { gp in
                    a.storage.withUnsafeBufferPointer { x in
                        b.storage.withUnsafeBufferPointer { y in
                            g.withUnsafeBufferPointer { gin in
                                if same {
                                    Parallel.chunks(gp.count, grain: Parallel.elementGrain) { r in
                                        for i in r { gp[i] = gin[i] * d(x[i], y[i]) }
                                    }
                                } else {
                                    Broadcast.parallelForEach(shape, sa, sb) { i, ia, ib in
                                        gp[i] = gin[i] * d(x[ia], y[ib])
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if needA { a.accumulate(Broadcast.reduce(partial(da), from: shape, to: a.shape)) }
            if needB { b.accumulate(Broadcast.reduce(partial(db), from: shape, to: b.shape)) }
        }
    }

    /// a + sign * b as plain loops (no per-element closure, so they vectorise) for equal shapes and for
    /// a per-row or per-column operand on either side; nil for other broadcasts.
    @_specialize(where T == Float)
    static func additiveForward(_ a: Tensor, _ b: Tensor, sign: T) -> (values: [T], shape: [Int])? {
        guard let shape = Broadcast.shape(a.shape, b.shape) else { return nil }
        let count = shape.reduce(1, *)
        let pattern: Broadcast.Pattern?
        let bBroadcast: Bool
        if a.shape == b.shape {
            pattern = nil
            bBroadcast = true
        } else if a.shape == shape, let p = Broadcast.pattern(b.shape, in: shape) {
            pattern = p
            bBroadcast = true
        } else if b.shape == shape, let p = Broadcast.pattern(a.shape, in: shape) {
            pattern = p
            bBroadcast = false
        } else {
            return nil
        }
        let (sa, sb): (T, T) = (1, sign)
        let out: [T] = filledArray(count: count) { o in
            a.storage.withUnsafeBufferPointer { x in
                b.storage.withUnsafeBufferPointer { y in
                    let ptrs = UncheckedSendable((x.baseAddress!, y.baseAddress!, o.baseAddress!))
                    // `full` has the output's shape; `small` is spread over it; scales apply to a and b.
                    let (full, small) = bBroadcast ? (ptrs.value.0, ptrs.value.1) : (ptrs.value.1, ptrs.value.0)
                    let (sf, ss) = bBroadcast ? (sa, sb) : (sb, sa)
                    let fullP = UncheckedSendable(full)
                    let smallP = UncheckedSendable(small)
                    switch pattern {
                    case nil:
                        Parallel.chunks(count, grain: Parallel.elementGrain) { r in
                            let (x, y, o) = ptrs.value
                            for i in r { o[i] = x[i] + sign * y[i] }
                        }
                    case .rows(let rows)?:
                        let inner = rows == 0 ? 0 : count / rows
                        Parallel.chunks(rows, grain: rowGrain(inner)) { rs in
                            let (f, s, o) = (fullP.value, smallP.value, ptrs.value.2)
                            for r in rs {
                                let v = ss * s[r]
                                for i in (r * inner)..<((r + 1) * inner) { o[i] = sf * f[i] + v }
                            }
                        }
                    case .columns(let inner)?:
                        let rows = inner == 0 ? 0 : count / inner
                        Parallel.chunks(rows, grain: rowGrain(inner)) { rs in
                            let (f, s, o) = (fullP.value, smallP.value, ptrs.value.2)
                            for r in rs { for j in 0..<inner { o[r * inner + j] = sf * f[r * inner + j] + ss * s[j] } }
                        }
                    }
                }
            }
        }
        return (out, shape)
    }

    /// a + sign * b: the output's gradient goes to a as it is and to b times sign (both summed over
    /// broadcast dimensions), with no per-element derivative to evaluate.
    @_specialize(where T == Float)
    static func additive(_ a: Tensor, _ b: Tensor, sign: T) -> Tensor {
        let (out, shape) =
            additiveForward(a, b, sign: sign) ?? (sign == 1 ? broadcastForward(a, b, +) : broadcastForward(a, b, -))
        return make(out, shape: shape, inputs: [a, b]) { g in
            if a.requiresGrad { a.accumulate(Broadcast.reduce(g, from: shape, to: a.shape)) }
            if b.requiresGrad {
                let gb = Broadcast.reduce(g, from: shape, to: b.shape)
                b.accumulate(sign == 1 ? gb : gb.map { -$0 })
            }
        }
    }

    /// out = f(x); `df(x, y)` is d out / d x given the input and the output.
    @inline(__always)
    @_specialize(where T == Float)
    func unary(_ f: (T) -> T, _ df: @escaping (T, T) -> T) -> Tensor {
        let x = storage
        let out: [T] = filledArray(count: count) { o in
            x.withUnsafeBufferPointer { xp in
                Parallel.chunks(o.count, grain: Parallel.elementGrain) { r in for i in r { o[i] = f(xp[i]) } }
            }
        }
        return Tensor.make(out, shape: shape, inputs: [self]) { [self] g in
            let gx: [T] = filledArray(count: count) { gp in
                g.withUnsafeBufferPointer { gin in
                    x.withUnsafeBufferPointer { xp in
                        out.withUnsafeBufferPointer { yp in
                            Parallel.chunks(gp.count, grain: Parallel.elementGrain) { r in
                                for i in r { gp[i] = gin[i] * df(xp[i], yp[i]) }
                            }
                        }
                    }
                }
            }
            accumulate(gx)
        }
    }

    @_specialize(where T == Float)
    public static func + (a: Tensor, b: Tensor) -> Tensor { additive(a, b, sign: 1) }
    @_specialize(where T == Float)
    public static func - (a: Tensor, b: Tensor) -> Tensor { additive(a, b, sign: -1) }
    @_specialize(where T == Float)
    public static func * (a: Tensor, b: Tensor) -> Tensor { binary(a, b, *, da: { _, y in y }, db: { x, _ in x }) }
    @_specialize(where T == Float)
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        binary(a, b, /, da: { _, y in 1 / y }, db: { x, y in -x / (y * y) })
    }

    @_specialize(where T == Float)
    public static func + (a: Tensor, s: T) -> Tensor { a.unary({ $0 + s }, { _, _ in 1 }) }
    @_specialize(where T == Float)
    public static func - (a: Tensor, s: T) -> Tensor { a.unary({ $0 - s }, { _, _ in 1 }) }
    @_specialize(where T == Float)
    public static func * (a: Tensor, s: T) -> Tensor { a.unary({ $0 * s }, { _, _ in s }) }
    @_specialize(where T == Float)
    public static func * (s: T, a: Tensor) -> Tensor { a * s }
    @_specialize(where T == Float)
    public static func + (s: T, a: Tensor) -> Tensor { a + s }
    @_specialize(where T == Float)
    public static func - (s: T, a: Tensor) -> Tensor { a.unary({ s - $0 }, { _, _ in -1 }) }
    @_specialize(where T == Float)
    public static func / (a: Tensor, s: T) -> Tensor { a * (1 / s) }
    @_specialize(where T == Float)
    public static prefix func - (a: Tensor) -> Tensor { a * -1 }

    @_specialize(where T == Float)
    public func exp() -> Tensor { unary(T.exp, { _, y in y }) }
    @_specialize(where T == Float)
    public func log() -> Tensor { unary(T.log, { x, _ in 1 / x }) }
    @_specialize(where T == Float)
    public func sqrt() -> Tensor { unary({ $0.squareRoot() }, { _, y in 1 / (2 * y) }) }
    @_specialize(where T == Float)
    public func square() -> Tensor { unary({ $0 * $0 }, { x, _ in 2 * x }) }
    @_specialize(where T == Float)
    public func abs() -> Tensor { unary({ Swift.abs($0) }, { x, _ in x > 0 ? 1 : (x < 0 ? -1 : 0) }) }
    @_specialize(where T == Float)
    public func tanh() -> Tensor { unary(T.tanh, { _, y in 1 - y * y }) }
    @_specialize(where T == Float)
    public func sigmoid() -> Tensor { unary({ 1 / (1 + T.exp(-$0)) }, { _, y in y * (1 - y) }) }
    @_specialize(where T == Float)
    public func relu() -> Tensor { unary({ $0 > 0 ? $0 : 0 }, { x, _ in x > 0 ? 1 : 0 }) }

    /// SiLU (swish): x * sigmoid(x).
    @_specialize(where T == Float)
    public func silu() -> Tensor {
        if let fast = floatKernel(lethe_silu_forward, lethe_silu_backward) { return fast }
        return unary(
            { $0 / (1 + T.exp(-$0)) },
            { x, _ in
                let s = 1 / (1 + T.exp(-x))
                return s * (1 + x * (1 - s))
            })
    }

    /// GELU with the exact erf form, PyTorch's default: x * Phi(x).
    @_specialize(where T == Float)
    public func gelu() -> Tensor {
        if let fast = floatKernel(lethe_gelu_forward, lethe_gelu_backward) { return fast }
        let invSqrt2 = T(0.70710678118654752440)
        let invSqrt2Pi = T(0.39894228040143267794)
        return unary(
            { $0 * (1 + T.erf($0 * invSqrt2)) / 2 },
            { x, _ in
                (1 + T.erf(x * invSqrt2)) / 2 + x * invSqrt2Pi * T.exp(-x * x / 2)
            })
    }

    /// An activation through its vectorised C kernels when T is Float (nil otherwise), split into
    /// fixed chunks over the threads.
    func floatKernel(
        _ forward: @escaping (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void,
        _ backward: @escaping (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void
    ) -> Tensor? {
        guard T.self == Float.self else { return nil }
        let x = storage
        let out: [T] = filledArray(count: count) { o in
            x.withUnsafeBytes { xb in
                let xp = xb.baseAddress!.assumingMemoryBound(to: Float.self)
                let op = UnsafeMutableRawPointer(o.baseAddress!).assumingMemoryBound(to: Float.self)
                Parallel.chunks(count, grain: Parallel.elementGrain) { r in
                    forward(xp + r.lowerBound, op + r.lowerBound, r.count)
                }
            }
        }
        return Tensor.make(out, shape: shape, inputs: [self]) { [self] g in
            let gx: [T] = filledArray(count: count) { d in
                x.withUnsafeBytes { xb in
                    g.withUnsafeBytes { gb in
                        let xp = xb.baseAddress!.assumingMemoryBound(to: Float.self)
                        let gp = gb.baseAddress!.assumingMemoryBound(to: Float.self)
                        let dp = UnsafeMutableRawPointer(d.baseAddress!).assumingMemoryBound(to: Float.self)
                        Parallel.chunks(count, grain: Parallel.elementGrain) { r in
                            backward(xp + r.lowerBound, gp + r.lowerBound, dp + r.lowerBound, r.count)
                        }
                    }
                }
            }
            accumulate(gx)
        }
    }

    /// Clamps values into [lo, hi]; the gradient passes where the value was inside.
    @_specialize(where T == Float)
    public func clamped(_ lo: T, _ hi: T) -> Tensor {
        unary({ Swift.min(Swift.max($0, lo), hi) }, { x, _ in x >= lo && x <= hi ? 1 : 0 })
    }
}
