import Testing
@testable import LetheTensor

/// The blocked im2col convolution against the convolution sum written out directly, on batches big
/// enough to be split into several blocks of images.
@Suite struct ConvolutionTests {
    /// One case per way a convolution runs, each spanning several blocks of images: Winograd (forward
    /// and weight gradient; input gradient by im2col, by Winograd; ragged tiles, rows of 2, 4, 5 and 8
    /// tiles, which the C transforms run in vectors of 8, 4 and singly); direct (few input
    /// channels at stride 1, one channel, a 5x5 kernel; strides 2 and 3 with and without padding, a 4x4
    /// kernel at stride 2, output rows that are not whole vectors, channel counts that are not whole
    /// register tiles; image rows packed by vectors, by overlapping vectors (9 wide) and singly (7 wide
    /// at stride 2)); shifted products (stride 1, 32x32 and up, a 5x5 kernel); pointwise (1x1); im2col
    /// (a padded 1x1, and a 5x5 kernel on a small image).
    struct Case: Sendable, CustomTestStringConvertible {
        var stride, padding, size, c, o, k: Int
        var path: String
        var testDescription: String { "\(path): stride \(stride) pad \(padding) \(size)x\(size) \(c)->\(o) k\(k)" }
    }
    static let cases = [
        Case(stride: 1, padding: 1, size: 20, c: 24, o: 3, k: 3, path: "winograd"),
        Case(stride: 1, padding: 1, size: 32, c: 24, o: 9, k: 3, path: "winograd"),
        Case(stride: 1, padding: 1, size: 17, c: 12, o: 9, k: 3, path: "winograd"),
        Case(stride: 1, padding: 1, size: 16, c: 16, o: 8, k: 3, path: "winograd"),
        Case(stride: 1, padding: 1, size: 8, c: 8, o: 12, k: 3, path: "winograd"),
        Case(stride: 1, padding: 0, size: 34, c: 4, o: 3, k: 3, path: "direct"),
        Case(stride: 1, padding: 1, size: 32, c: 1, o: 6, k: 3, path: "direct"),
        Case(stride: 1, padding: 2, size: 20, c: 6, o: 9, k: 5, path: "direct"),
        Case(stride: 2, padding: 1, size: 45, c: 24, o: 6, k: 3, path: "direct"),
        Case(stride: 2, padding: 0, size: 40, c: 10, o: 5, k: 3, path: "direct"),
        Case(stride: 2, padding: 1, size: 18, c: 5, o: 4, k: 4, path: "direct"),
        Case(stride: 3, padding: 1, size: 20, c: 3, o: 7, k: 3, path: "direct"),
        Case(stride: 2, padding: 1, size: 7, c: 9, o: 5, k: 3, path: "direct"),
        Case(stride: 1, padding: 1, size: 9, c: 2, o: 4, k: 3, path: "direct"),
        Case(stride: 1, padding: 2, size: 32, c: 8, o: 3, k: 5, path: "shifted"),
        Case(stride: 1, padding: 0, size: 12, c: 8, o: 5, k: 1, path: "pointwise"),
        Case(stride: 1, padding: 1, size: 10, c: 8, o: 5, k: 1, path: "im2col"),
        Case(stride: 1, padding: 2, size: 20, c: 8, o: 3, k: 5, path: "im2col"),
    ]

    @Test(arguments: cases)
    func blockedConvolutionMatchesTheDirectSum(_ t: Case) {
        let (stride, padding, size) = (t.stride, t.padding, t.size)
        var rng = Philox(seed: 5)
        let (n, c, o, k) = (5, t.c, t.o, t.k)
        func r(_ shape: [Int]) -> Tensor<Double> {
            Tensor((0..<shape.reduce(1, *)).map { _ in rng.normal() }, shape: shape, requiresGrad: true)
        }
        let x = r([n, c, size, size])
        let w = r([o, c, k, k])
        let b = r([o])
        let geo = Conv2dGeometry(stride: stride, padding: padding)
        let plan = ConvPlan(input: x.shape, kernel: w.shape, geo: geo)
        #expect(plan.blocks.count > 1, "the case must span several blocks (\(plan.blockImages) images per block)")
        #expect("\(plan.algorithm)" == t.path)
        let out = x.conv2d(w, b, geo)
        let ho = out.shape[2]
        let weights = Tensor<Double>((0..<out.count).map { _ in rng.normal() }, shape: out.shape)
        (out * weights).sum().backward()

        // out[b][o][y][x] = bias[o] + sum over c, i, j of w[o][c][i][j] * in[b][c][y s - p + i][x s - p + j];
        // the gradients of sum(out * R) follow from the same sum.
        var expected = [Double](repeating: 0, count: out.count)
        var gx = [Double](repeating: 0, count: x.count)
        var gw = [Double](repeating: 0, count: w.count)
        var gb = [Double](repeating: 0, count: o)
        for bi in 0..<n {
            for oc in 0..<o {
                for y in 0..<ho {
                    for xo in 0..<ho {
                        let at = ((bi * o + oc) * ho + y) * ho + xo
                        var sum = b.storage[oc]
                        let rw = weights.storage[at]
                        gb[oc] += rw
                        for ci in 0..<c {
                            for i in 0..<k {
                                for j in 0..<k {
                                    let iy = y * stride - padding + i
                                    let ix = xo * stride - padding + j
                                    guard iy >= 0, iy < size, ix >= 0, ix < size else { continue }
                                    let xi = ((bi * c + ci) * size + iy) * size + ix
                                    let wi = ((oc * c + ci) * k + i) * k + j
                                    sum += w.storage[wi] * x.storage[xi]
                                    gx[xi] += rw * w.storage[wi]
                                    gw[wi] += rw * x.storage[xi]
                                }
                            }
                        }
                        expected[at] = sum
                    }
                }
            }
        }
        func worst(_ a: [Double], _ e: [Double]) -> Double { zip(a, e).map { abs($0 - $1) }.max() ?? 0 }
        #expect(worst(out.storage, expected) < 1e-10)
        #expect(worst(x.grad!, gx) < 1e-10)
        #expect(worst(w.grad!, gw) < 1e-9)
        #expect(worst(b.grad!, gb) < 1e-9)
    }

    /// The Float path (C kernels, in every instruction set this CPU runs) against the Double path
    /// checked above.
    @Test(arguments: cases, KernelISA.supported)
    func floatKernelsMatchTheDoublePath(_ t: Case, isa: KernelISA) throws {
        let f = try Numerics.with(isa: isa) { Self.run(Float.self, t) }
        let d = Self.run(Double.self, t)
        for (i, name) in ["out", "x", "w", "b"].enumerated() {
            let (a, e) = (f[i], d[i])
            let scale = max(1, e.map(abs).max() ?? 1)
            let err = zip(a, e).map { abs($0 - $1) }.max() ?? 0
            #expect(err < 2e-5 * scale, "\(name): \(err) of \(scale)")
        }
    }

    /// F(4x4, 3x3) rounds more than the direct sum (coefficients up to 8 and 1/24): at the reference
    /// models' widest layer (64 -> 64 channels, 16x16) Float must still stay within 2e-5 of the Double
    /// path (which the test above pins to the direct sum).
    @Test(arguments: KernelISA.supported)
    func winogradFloatStaysCloseAtTheWidestReferenceLayer(isa: KernelISA) throws {
        let t = Case(stride: 1, padding: 1, size: 16, c: 64, o: 64, k: 3, path: "winograd")
        let (f, d) = (try Numerics.with(isa: isa) { Self.run(Float.self, t) }, Self.run(Double.self, t))
        for (i, name) in ["out", "x", "w", "b"].enumerated() {
            let scale = max(1, d[i].map(abs).max() ?? 1)
            let err = zip(f[i], d[i]).map { abs($0 - $1) }.max() ?? 0
            #expect(err < 2e-5 * scale, "\(name): \(err) of \(scale)")
        }
    }

    /// The output and the gradients of sum(out * R) of one multi-block convolution in precision S.
    static func run<S: TensorScalar>(_ type: S.Type, _ t: Case) -> [[Double]] {
        var rng = Philox(seed: 9)
        func r(_ shape: [Int]) -> Tensor<S> {
            Tensor((0..<shape.reduce(1, *)).map { _ in S(rng.normal()) }, shape: shape, requiresGrad: true)
        }
        let x = r([5, t.c, t.size, t.size])
        let w = r([t.o, t.c, t.k, t.k])
        let b = r([t.o])
        let out = x.conv2d(w, b, Conv2dGeometry(stride: t.stride, padding: t.padding))
        (out * Tensor((0..<out.count).map { _ in S(rng.normal()) }, shape: out.shape)).sum().backward()
        return [out.storage, x.grad!, w.grad!, b.grad!].map { $0.map { Double($0) } }
    }
}
