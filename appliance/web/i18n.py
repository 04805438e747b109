"""UI text in Vietnamese (first), English and Chinese. Keys are stable identifiers."""

from __future__ import annotations

LANGUAGES = ("vi", "en", "zh")

TEXT: dict[str, dict[str, str]] = {
    "title": {"vi": "Cổng thông minh - Làn hàng hóa", "en": "Smart gate - cargo lane", "zh": "智慧口岸 - 货运车道"},
    "crossings": {"vi": "Lượt qua cổng", "en": "Crossings", "zh": "通行记录"},
    "all": {"vi": "Tất cả", "en": "All", "zh": "全部"},
    "time": {"vi": "Thời gian", "en": "Time", "zh": "时间"},
    "lane": {"vi": "Làn", "en": "Lane", "zh": "车道"},
    "decision": {"vi": "Kết luận", "en": "Verdict", "zh": "结论"},
    "tractor_plate": {"vi": "Biển số đầu kéo", "en": "Tractor plate", "zh": "牵引车车牌"},
    "trailer_plate": {"vi": "Biển số rơ-moóc", "en": "Trailer plate", "zh": "挂车车牌"},
    "fleet_id": {"vi": "Mã xe tự hành", "en": "Fleet ID", "zh": "无人车编号"},
    "containers": {"vi": "Số container", "en": "Containers", "zh": "集装箱号"},
    "seal": {"vi": "Niêm phong", "en": "Seal", "zh": "封志"},
    "declaration": {"vi": "Số tờ khai", "en": "Declaration", "zh": "报关单号"},
    "reasons": {"vi": "Lý do", "en": "Reasons", "zh": "原因"},
    "evidence": {"vi": "Bằng chứng", "en": "Evidence", "zh": "证据"},
    "none": {"vi": "Không có", "en": "None", "zh": "无"},
    "absent": {"vi": "Không có niêm phong", "en": "No seal", "zh": "无封志"},
    "back": {"vi": "Quay lại", "en": "Back", "zh": "返回"},
    "empty": {"vi": "Chưa có lượt qua cổng nào.", "en": "No crossings yet.", "zh": "暂无通行记录。"},
    "CLEAR": {"vi": "THÔNG QUAN", "en": "CLEAR", "zh": "放行"},
    "REVIEW": {"vi": "CẦN KIỂM TRA", "en": "REVIEW", "zh": "待审核"},
    "HOLD": {"vi": "TẠM GIỮ", "en": "HOLD", "zh": "扣留"},
}


def translator(lang: str) -> dict[str, str]:
    """All UI strings in ``lang`` (Vietnamese when the language is unknown)."""
    lang = lang if lang in LANGUAGES else "vi"
    return {key: texts[lang] for key, texts in TEXT.items()}
