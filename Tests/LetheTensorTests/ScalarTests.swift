import Foundation
import Testing
@testable import LetheTensor

@Suite struct ScalarTests {
    @Test func fastFloatErfStaysWithinOneMillionthOfLibm() {
        var worstAbs: Float = 0, worstRel: Float = 0
        var x: Float = -6
        while x <= 6 {
            let exact = Float(Foundation.erf(Double(x)))
            let approx = Float.erf(x)
            worstAbs = max(worstAbs, abs(approx - exact))
            if abs(exact) > 1e-30 { worstRel = max(worstRel, abs(approx - exact) / abs(exact)) }
            x += 0.00037
        }
        #expect(worstAbs < 5e-7)
        #expect(worstRel < 1e-6)
        #expect(Float.erf(0) == 0)
        #expect(Float.erf(10) == 1 && Float.erf(-10) == -1)
    }
}
