import CBLAS
import Foundation

/// The element types a tensor holds: Float for training, Double for gradient checks.
public protocol TensorScalar: BinaryFloatingPoint, Sendable, CustomStringConvertible where RawSignificand: FixedWidthInteger {
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Self,
                     a: UnsafePointer<Self>, lda: Int, b: UnsafePointer<Self>, ldb: Int,
                     beta: Self, c: UnsafeMutablePointer<Self>, ldc: Int)
    static func exp(_ x: Self) -> Self
    static func log(_ x: Self) -> Self
    static func tanh(_ x: Self) -> Self
    static func erf(_ x: Self) -> Self
    static var dtypeName: String { get }
}

@inline(__always) private func blasTrans(_ t: Bool) -> CBLAS_TRANSPOSE { t ? CblasTrans : CblasNoTrans }

extension Float: TensorScalar {
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, blasTrans(transA), blasTrans(transB), Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    @inline(__always) public static func exp(_ x: Float) -> Float { Foundation.exp(x) }
    @inline(__always) public static func log(_ x: Float) -> Float { Foundation.log(x) }
    @inline(__always) public static func tanh(_ x: Float) -> Float { Foundation.tanh(x) }
    @inline(__always) public static func erf(_ x: Float) -> Float { Foundation.erf(x) }
    public static var dtypeName: String { "F32" }
}

extension Double: TensorScalar {
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Double,
                            a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                            beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        cblas_dgemm(CblasRowMajor, blasTrans(transA), blasTrans(transB), Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    @inline(__always) public static func exp(_ x: Double) -> Double { Foundation.exp(x) }
    @inline(__always) public static func log(_ x: Double) -> Double { Foundation.log(x) }
    @inline(__always) public static func tanh(_ x: Double) -> Double { Foundation.tanh(x) }
    @inline(__always) public static func erf(_ x: Double) -> Double { Foundation.erf(x) }
    public static var dtypeName: String { "F64" }
}

/// OpenBLAS threading. Bits of a gemm depend on the thread count, so the count is set once per run
/// and recorded with it.
public enum BLAS {
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
