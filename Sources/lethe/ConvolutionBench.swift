import Foundation
import LetheTensor

/// `lethe bench --convolutions`: every convolution of the reference models, path by path (forward,
/// input gradient, weight gradient), beside PyTorch's, whose float32 CPU convolutions run on oneDNN:
/// where Lethe's own kernels stand against the library PyTorch uses.
extension Bench {
    /// The convolutions of the reference models (batch 32, as one side of an unlearning step).
    static let convolutions: [(name: String, x: [Int], w: [Int], stride: Int, padding: Int)] = [
        ("3x3 2->32 @32 (UNet conv_in)", [32, 2, 32, 32], [32, 2, 3, 3], 1, 1),
        ("3x3 1->32 @32 (VQ conv_in)", [32, 1, 32, 32], [32, 1, 3, 3], 1, 1),
        ("3x3 32->32 @32", [32, 32, 32, 32], [32, 32, 3, 3], 1, 1),
        ("3x3 s2 32->32 @32 (down)", [32, 32, 32, 32], [32, 32, 3, 3], 2, 1),
        ("3x3 32->64 @16", [32, 32, 16, 16], [64, 32, 3, 3], 1, 1),
        ("3x3 64->64 @16", [32, 64, 16, 16], [64, 64, 3, 3], 1, 1),
        ("1x1 64->32 @16", [32, 64, 16, 16], [32, 64, 1, 1], 1, 0),
        ("3x3 32->1 @32 (conv_out)", [32, 32, 32, 32], [1, 32, 3, 3], 1, 1),
    ]

    func convolutionRows(torch: TorchReference?) {
        print("")
        if let torch { print("PyTorch \(torch.version), convolutions on \(torch.oneDNN)") }
        print(
            "convolution (batch 32)               path      Lethe ms   PyTorch ms   PyTorch/Lethe")
        var rng = Philox(seed: 0)
        var ratios: [String: [Double]] = [:]
        for c in Self.convolutions {
            let geometry = Conv2dGeometry(stride: c.stride, padding: c.padding)
            for path in ["forward", "input", "weight"] {
                let x = Tensor<Float>.randn(c.x, rng: &rng, requiresGrad: path == "input")
                let w = Tensor<Float>.randn(c.w, rng: &rng, requiresGrad: path == "weight")
                let key =
                    "x=\(c.x.map(String.init).joined(separator: ","));w=\(c.w.map(String.init).joined(separator: ","));s=\(c.stride);p=\(c.padding);path=\(path)"
                let (t, ms) = alternate("conv", key, torch: torch) {
                    if path == "forward" {
                        _ = GradMode.withoutGrad { x.conv2d(w, nil, geometry) }
                    } else {
                        x.conv2d(w, nil, geometry).sum().backward()
                    }
                }
                let label = path == "forward" ? "forward" : path == "input" ? "+ dx" : "+ dw"
                let reference =
                    ms.map { String(format: "   %10.3f   %13.2f", $0, $0 / (t * 1e3)) }
                    ?? "            —               —"
                if let ms { ratios[path, default: []].append(ms / (t * 1e3)) }
                print(c.name.padding(37) + label.padding(8) + String(format: "%10.3f", t * 1e3) + reference)
            }
        }
        for path in ["forward", "input", "weight"] {
            guard let r = ratios[path], !r.isEmpty else { continue }
            let geometric = exp(r.map { log($0) }.reduce(0, +) / Double(r.count))
            print(
                String(
                    format: "%@: PyTorch/Lethe %.2f (geometric mean), %.2f-%.2f over the %d shapes",
                    path == "forward"
                        ? "forward" : path == "input" ? "forward + input gradient" : "forward + weight gradient",
                    geometric, r.min()!, r.max()!, r.count))
        }
        print(
            "Paths: forward alone (no graph), forward + the input's gradient (weights frozen), forward + the weights' gradient (input frozen), each of a sum; >= 1: Lethe's kernel is at least as fast as oneDNN's through PyTorch."
        )
    }
}
