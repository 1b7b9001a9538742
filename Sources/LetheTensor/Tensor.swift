import Synchronization

/// A dense, contiguous, row-major tensor that records the operations that made it, so gradients can
/// flow back to the parameters. Storage is copy-on-write: `reshaped` shares it.
public final class Tensor<T: TensorScalar>: @unchecked Sendable {
    public internal(set) var storage: [T]
    public let shape: [Int]
    /// Leaves with `requiresGrad` accumulate `grad` in `backward()`; frozen parameters do not.
    public var requiresGrad: Bool
    public internal(set) var grad: [T]?
    var node: Node<T>?

    public init(_ storage: [T], shape: [Int], requiresGrad: Bool = false) {
        precondition(
            shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) == storage.count,
            "shape \(shape) does not hold \(storage.count) elements")
        self.storage = storage
        self.shape = shape
        self.requiresGrad = requiresGrad
    }

    public convenience init(zeros shape: [Int], requiresGrad: Bool = false) {
        self.init([T](repeating: 0, count: shape.reduce(1, *)), shape: shape, requiresGrad: requiresGrad)
    }

    public convenience init(repeating value: T, shape: [Int]) {
        self.init([T](repeating: value, count: shape.reduce(1, *)), shape: shape)
    }

    public convenience init(scalar: T) { self.init([scalar], shape: []) }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    public var scalar: T {
        precondition(count == 1)
        return storage[0]
    }

    /// A copy of the values with no history.
    public func detached() -> Tensor { Tensor(storage, shape: shape) }

    public func zeroGrad() { grad = nil }

    /// Replaces the values in place (optimisers, loading); the shape must match.
    public func assign(_ values: [T]) {
        precondition(values.count == storage.count)
        storage = values
    }

    /// Adds `g` into this tensor's gradient (backward passes add; zeroing is explicit).
    @_specialize(where T == Float)
    func accumulate(_ g: [T]) {
        guard requiresGrad else { return }
        precondition(g.count == count, "gradient of \(g.count) for a tensor of \(count)")
        if grad == nil {
            grad = g
        } else if !g.isEmpty {
            grad!.withUnsafeMutableBufferPointer { dst in
                g.withUnsafeBufferPointer { src in
                    let ptrs = UncheckedSendable((dst.baseAddress!, src.baseAddress!))
                    Parallel.chunks(dst.count, grain: Parallel.elementGrain) { r in
                        T.add(ptrs.value.1 + r.lowerBound, into: ptrs.value.0 + r.lowerBound, count: r.count)
                    }
                }
            }
        }
    }
}

/// One recorded operation: its inputs and how to send the output's gradient back to them.
final class Node<T: TensorScalar> {
    let id: UInt64
    let inputs: [Tensor<T>]
    let backward: ([T]) -> Void

    init(inputs: [Tensor<T>], backward: @escaping ([T]) -> Void) {
        self.id = nodeCounter.wrappingAdd(1, ordering: .relaxed).newValue
        self.inputs = inputs
        self.backward = backward
    }
}

/// Creation order of recorded operations; the tape is walked in reverse of it.
let nodeCounter = Atomic<UInt64>(0)

/// Whether operations record history. `GradMode.withoutGrad { }` turns it off in a scope, like
/// PyTorch's `torch.no_grad()`; it is task-local, never a global switch.
public enum GradMode {
    @TaskLocal public static var isEnabled = true

    public static func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
        try $isEnabled.withValue(false, operation: body)
    }
}

extension Tensor {
    /// Wraps a forward result; records `backward` when any input needs a gradient.
    @_specialize(where T == Float)
    static func make(_ values: [T], shape: [Int], inputs: [Tensor], backward: @escaping ([T]) -> Void) -> Tensor {
        let out = Tensor(values, shape: shape)
        if GradMode.isEnabled && inputs.contains(where: { $0.requiresGrad }) {
            out.requiresGrad = true
            out.node = Node(inputs: inputs, backward: backward)
        }
        return out
    }

    /// Reverse-mode differentiation from this scalar: every recorded operation reachable from it runs
    /// its backward once, newest first, so each sees its output's complete gradient.
    @_specialize(where T == Float)
    public func backward() {
        precondition(count == 1, "backward() starts from a scalar; this tensor has shape \(shape)")
        var order: [Tensor] = []
        var seen = Set<ObjectIdentifier>()
        var stack: [Tensor] = [self]
        while let t = stack.popLast() {
            guard t.node != nil, seen.insert(ObjectIdentifier(t)).inserted else { continue }
            order.append(t)
            stack.append(contentsOf: t.node!.inputs)
        }
        order.sort { $0.node!.id > $1.node!.id }
        accumulate([T](repeating: 1, count: 1))
        for t in order {
            guard let g = t.grad else { continue }
            t.node!.backward(g)
        }
        // Intermediate gradients are no longer needed once the pass is done.
        for t in order where t !== self {
            t.grad = nil
            t.node = nil
        }
        node = nil
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = storage.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor<\(T.dtypeName)>(shape: \(shape), [\(shown)\(count > 8 ? ", ..." : "")])"
    }
}

/// An array whose every element `fill` writes (it must: the memory starts uninitialised). Saves the
/// serial zero-fill of outputs that a parallel loop overwrites anyway.
@inline(__always)
func filledArray<T: TensorScalar>(count: Int, _ fill: (UnsafeMutableBufferPointer<T>) -> Void) -> [T] {
    [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        fill(buffer)
        initialized = count
    }
}

/// An array of trivial scalars left unwritten, for buffers that a later pass writes whole before
/// anything reads them (the gradient slots of a convolution's blocks, a kernel's full output).
@inline(__always)
func unwrittenArray<T: TensorScalar>(count: Int) -> [T] {
    [T](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}
