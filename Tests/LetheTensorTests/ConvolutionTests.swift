import Testing
@testable import LetheTensor

/// The blocked im2col convolution against the convolution sum written out directly, on batches big
/// enough to be split into several blocks of images.
@Suite struct ConvolutionTests {
    /// Cases: im2col at stride 1 and 2, shifted products (stride 1 from 32x32 outputs), with and
    /// without padding.
    static let cases = [(stride: 1, padding: 1, size: 20), (stride: 2, padding: 1, size: 45), (stride: 1, padding: 0, size: 34),
                        (stride: 1, padding: 1, size: 32), (stride: 2, padding: 0, size: 40)]

    @Test(arguments: cases)
    func blockedConvolutionMatchesTheDirectSum(stride: Int, padding: Int, size: Int) {
        var rng = Philox(seed: 5)
        let (n, c, o, k) = (5, 24, 3, 3)
        func r(_ shape: [Int]) -> Tensor<Double> {
            Tensor((0..<shape.reduce(1, *)).map { _ in rng.normal() }, shape: shape, requiresGrad: true)
        }
        let x = r([n, c, size, size]), w = r([o, c, k, k]), b = r([o])
        let geo = Conv2dGeometry(stride: stride, padding: padding)
        let plan = ConvPlan(input: x.shape, kernel: w.shape, geo: geo)
        #expect(plan.blocks.count > 1, "the case must span several blocks (\(plan.blockImages) images per block)")
        #expect(plan.shifted == (stride == 1 && size + 2 * padding - 2 >= 32))
        let out = x.conv2d(w, b, geo)
        let ho = out.shape[2]
        let weights = Tensor<Double>((0..<out.count).map { _ in rng.normal() }, shape: out.shape)
        (out * weights).sum().backward()

        // out[b][o][y][x] = bias[o] + sum over c, i, j of w[o][c][i][j] * in[b][c][y s - p + i][x s - p + j];
        // the gradients of sum(out * R) follow from the same sum.
        var expected = [Double](repeating: 0, count: out.count)
        var gx = [Double](repeating: 0, count: x.count), gw = [Double](repeating: 0, count: w.count), gb = [Double](repeating: 0, count: o)
        for bi in 0..<n { for oc in 0..<o { for y in 0..<ho { for xo in 0..<ho {
            let at = ((bi * o + oc) * ho + y) * ho + xo
            var sum = b.storage[oc]
            let rw = weights.storage[at]
            gb[oc] += rw
            for ci in 0..<c { for i in 0..<k { for j in 0..<k {
                let iy = y * stride - padding + i, ix = xo * stride - padding + j
                guard iy >= 0, iy < size, ix >= 0, ix < size else { continue }
                let xi = ((bi * c + ci) * size + iy) * size + ix, wi = ((oc * c + ci) * k + i) * k + j
                sum += w.storage[wi] * x.storage[xi]
                gx[xi] += rw * w.storage[wi]
                gw[wi] += rw * x.storage[xi]
            } } }
            expected[at] = sum
        } } } }
        func worst(_ a: [Double], _ e: [Double]) -> Double { zip(a, e).map { abs($0 - $1) }.max() ?? 0 }
        #expect(worst(out.storage, expected) < 1e-10)
        #expect(worst(x.grad!, gx) < 1e-10)
        #expect(worst(w.grad!, gw) < 1e-9)
        #expect(worst(b.grad!, gb) < 1e-9)
    }

    /// The Float path (C im2col / col2im kernels) against the Double path checked above.
    @Test(arguments: cases)
    func floatKernelsMatchTheDoublePath(stride: Int, padding: Int, size: Int) {
        let f = Self.run(Float.self, stride: stride, padding: padding, size: size)
        let d = Self.run(Double.self, stride: stride, padding: padding, size: size)
        for (i, name) in ["out", "x", "w", "b"].enumerated() {
            let (a, e) = (f[i], d[i])
            let scale = max(1, e.map(abs).max() ?? 1)
            let err = zip(a, e).map { abs($0 - $1) }.max() ?? 0
            #expect(err < 2e-5 * scale, "\(name): \(err) of \(scale)")
        }
    }

    /// The output and the gradients of sum(out * R) of one multi-block convolution in precision S.
    static func run<S: TensorScalar>(_ type: S.Type, stride: Int, padding: Int, size: Int) -> [[Double]] {
        var rng = Philox(seed: 9)
        func r(_ shape: [Int]) -> Tensor<S> {
            Tensor((0..<shape.reduce(1, *)).map { _ in S(rng.normal()) }, shape: shape, requiresGrad: true)
        }
        let x = r([5, 24, size, size]), w = r([3, 24, 3, 3]), b = r([3])
        let out = x.conv2d(w, b, Conv2dGeometry(stride: stride, padding: padding))
        (out * Tensor((0..<out.count).map { _ in S(rng.normal()) }, shape: out.shape)).sum().backward()
        return [out.storage, x.grad!, w.grad!, b.grad!].map { $0.map { Double($0) } }
    }
}
