// The backward pass of one block of images of a convolution: its share of the weight gradient and the
// input gradient of its images, each by the plan's algorithm.

extension ConvPlan {
    /// One block's backward pass. `dw` (O, C, kh, kw) is overwritten with the block's share of the
    /// weight gradient; `gx` receives the gradient of the block's images (written whole by the
    /// transposed and direct paths, added into zeros by col2im). Serial: blocks run in parallel.
    func backwardBlock<T: TensorScalar>(
        x: UnsafePointer<T>, weight: UnsafePointer<T>, g: UnsafePointer<T>, images: Range<Int>,
        weightGradient dw: UnsafeMutablePointer<T>?, inputGradient gx: UnsafeMutablePointer<T>?,
        transposed: ConvPlan?, flippedKernel: [T]
    ) {
        let blockWidth = blockImages * hw
        Scratch.with(T.self, count: ck * blockWidth, zeroed: false) { cols in
            Scratch.with(T.self, count: o * blockWidth, zeroed: false) { gBlock in
                // The im2col products read the block's gradient as one (O, |images| Ho Wo) matrix.
                let im2colWeight = dw != nil && (algorithm == .im2col || algorithm == .pointwise)
                let im2colInput = gx != nil && transposed == nil && algorithm != .direct
                if im2colWeight || im2colInput { imagesToBlock(images, from: g, into: gBlock) }
                if let dw { weightGradientBlock(x: x, g: g, gBlock: gBlock, cols: cols, images: images, into: dw) }
                if let gx {
                    if let t = transposed {
                        // With stride 1 the input's gradient is the transposed convolution, by its own path.
                        flippedKernel.withUnsafeBufferPointer {
                            t.forwardBlock(g, images: images, kernel: $0.baseAddress!, bias: nil, into: gx)
                        }
                    } else if algorithm == .direct {
                        directInputGradient(g, images: images, weight: weight, into: gx)
                    } else {
                        // The columns' gradient W^T (CK, O) x g (O, width), scattered back by col2im.
                        gemm(
                            weight, UnsafePointer(gBlock), cols, m: ck, n: images.count * hw, k: o, transA: true,
                            transB: false, beta: 0, parallel: false)
                        col2im(UnsafePointer(cols), images: images, into: gx)
                    }
                }
            }
        }
    }

    /// The block's share of the weight gradient, into `dw` (overwritten).
    private func weightGradientBlock<T: TensorScalar>(
        x: UnsafePointer<T>, g: UnsafePointer<T>, gBlock: UnsafeMutablePointer<T>, cols: UnsafeMutablePointer<T>,
        images: Range<Int>, into dw: UnsafeMutablePointer<T>
    ) {
        switch algorithm {
        case .winograd:
            // dU = (A dY A^T) V^T per position, dW = G^T dU G.
            let tiles = tiles(images.count)
            Scratch.with(T.self, count: 36 * c * tiles, zeroed: false) { v in
                Scratch.with(T.self, count: 36 * o * tiles, zeroed: false) { dm in
                    Scratch.with(T.self, count: 36 * o * c, zeroed: false) { du in
                        winogradInput(x, images: images, into: v)
                        winogradOutputGradient(g, images: images, into: dm)
                        winogradKernelProducts(UnsafePointer(dm), UnsafePointer(v), images: images.count, into: du)
                        winogradKernelGradient(UnsafePointer(du), into: dw)
                    }
                }
            }
        case .direct:
            directWeightGradient(x, g, images: images, into: dw)
        case .shifted:
            // Per tap: g on the padded grid x the shifted copy^T.
            Scratch.with(T.self, count: c * paddedStride(images.count), zeroed: false) { padded in
                Scratch.with(T.self, count: o * images.count * paddedPlane, zeroed: false) { gPadded in
                    Scratch.with(T.self, count: o * c * kh * kw, zeroed: false) { tapScratch in
                        pad(x, images: images, into: padded)
                        padOutputs(g, images: images, into: gPadded)
                        shiftedWeightGradient(
                            UnsafePointer(gPadded), UnsafePointer(padded), images: images.count, tapScratch: tapScratch,
                            into: dw)
                    }
                }
            }
        case .im2col, .pointwise:
            // gW = g (O, width) x cols^T (width, CK): one product over the block. For 1x1 convolutions
            // the columns are the block's images side by side; products per image, accumulated, were
            // 0.4 ms faster at batch 32 but change the sums' order, so the bits (measured 2026-12-08).
            im2col(x, images: images, into: cols)
            gemm(
                UnsafePointer(gBlock), UnsafePointer(cols), dw, m: o, n: ck, k: images.count * hw, transA: false,
                transB: true, beta: 0, parallel: false)
        }
    }
}
