import Foundation
import Testing
import LetheTensor
@testable import LetheUnlearn
import LetheRuns

@Suite struct LinalgTests {
    @Test func choleskyReconstructsTheMatrix() throws {
        let a: [Double] = [4, 2, 0.4, 2, 5, 1, 0.4, 1, 3]
        let l = try Linalg.cholesky(a, n: 3)
        for i in 0..<3 {
            for j in 0..<3 {
                let v = (0..<3).reduce(0.0) { $0 + l[i * 3 + $1] * l[j * 3 + $1] }
                #expect(abs(v - a[i * 3 + j]) < 1e-12)
            }
        }
        #expect(l[1] == 0 && l[2] == 0 && l[5] == 0, "lower triangular")
        #expect(throws: Linalg.NotPositiveDefinite.self) { try Linalg.cholesky([1, 2, 2, 1], n: 2) }
    }

    @Test func symmetricEigenOfAKnownMatrix() {
        // [[2, 1], [1, 2]]: eigenvalues 3 and 1, vectors (1, 1)/sqrt2 and (1, -1)/sqrt2.
        let (w, v) = Linalg.symmetricEigen([2, 1, 1, 2], n: 2)
        #expect(abs(w[0] - 3) < 1e-12 && abs(w[1] - 1) < 1e-12)
        #expect(abs(abs(v[0]) - 0.5.squareRoot()) < 1e-12 && abs(v[0] - v[2]) < 1e-12)
    }

    @Test func squareRootSquaresBack() {
        let a: [Double] = [4, 2, 0.4, 2, 5, 1, 0.4, 1, 3]
        let r = Linalg.symmetricSqrt(a, n: 3)
        let rr = Linalg.multiply(r, r, n: 3)
        for k in 0..<9 { #expect(abs(rr[k] - a[k]) < 1e-10) }
    }
}

@Suite struct MetricsTests {
    func gaussian(_ n: Int, d: Int, mean: Float, std: Float, seed: UInt64) -> [Float] {
        var rng = Philox(seed: seed)
        return (0..<(n * d)).map { _ in Float(rng.normal()) * std + mean }
    }

    @Test func fidOfASetWithItselfIsZero() {
        let a = gaussian(200, d: 4, mean: 0, std: 1, seed: 1)
        #expect(Metrics.fid(a, a, d: 4) < 1e-8)
    }

    @Test func fidOfShiftedAndScaledSetsIsTheClosedForm() {
        // b = 2a + 3 per element: mean term 4 * d * (mean shift)^2 ... computed exactly from a's own moments.
        let d = 3
        let a = gaussian(500, d: d, mean: 0, std: 1, seed: 2)
        let b = a.map { 2 * $0 + 3 }
        let (_, cov) = Linalg.meanAndCovariance(a, rows: 500, d: d)
        let trace = (0..<d).reduce(0) { $0 + cov[$1 * d + $1] }
        // Sb = 4 Sa: tr(Sa + 4 Sa - 2 * 2 Sa) = tr(Sa); mean shift 3 in every coordinate (plus a's own mean doubled).
        let ma = Linalg.meanAndCovariance(a, rows: 500, d: d).mean
        let meanTerm = ma.reduce(0) { $0 + ($1 + 3) * ($1 + 3) }
        #expect(abs(Metrics.fid(a, b, d: d) - (meanTerm + trace)) < 1e-6)
    }

    @Test func inceptionScoreBounds() {
        // Confident and evenly spread: IS = number of classes. All the same: IS = 1.
        let confident: [Float] = [1, 0, 0, 0, 1, 0, 0, 0, 1]
        #expect(abs(Metrics.inceptionScore(confident, classes: 3) - 3) < 1e-9)
        let same: [Float] = [0.2, 0.5, 0.3, 0.2, 0.5, 0.3]
        #expect(abs(Metrics.inceptionScore(same, classes: 3) - 1) < 1e-9)
    }

    @Test func cosineAndAccuracy() {
        #expect(abs(Metrics.meanCosine([1, 0, 1, 1], [2, 0, -1, -1], d: 2) - 0) < 1e-12)  // (1 + -1) / 2
        // the tie goes to the lower class
        #expect(Metrics.accuracy([0.1, 0.9, 0.8, 0.2, 0.5, 0.5], classes: 2, labels: [1, 1, 0]) == 2.0 / 3.0)
    }

    @Test func ssimIsOneForIdenticalImagesAndFallsWithNoise() {
        var rng = Philox(seed: 3)
        let x = Tensor<Float>.uniform([2, 1, 16, 16], 0, 1, rng: &rng)
        #expect(abs(Metrics.ssim(x, x) - 1) < 1e-9)
        let noisy = (x + Tensor<Float>.randn(x.shape, std: 0.2, rng: &rng)).clamped(0, 1)
        let s = Metrics.ssim(x, noisy)
        #expect(s < 0.9 && s > 0)
    }
}
