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
    # Login, roles and user administration (appliance/web/login.py, admin.py)
    "login": {"vi": "Đăng nhập", "en": "Log in", "zh": "登录"},
    "logout": {"vi": "Đăng xuất", "en": "Log out", "zh": "退出登录"},
    "username": {"vi": "Tên đăng nhập", "en": "Username", "zh": "用户名"},
    "password": {"vi": "Mật khẩu", "en": "Password", "zh": "密码"},
    "login_failed": {"vi": "Tên đăng nhập hoặc mật khẩu không đúng.", "en": "Wrong username or password.",
                     "zh": "用户名或密码错误。"},
    "login_locked": {"vi": "Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau.",
                     "en": "Too many failed attempts. Please try again later.", "zh": "登录失败次数过多，请稍后再试。"},
    "forbidden": {"vi": "Không có quyền truy cập", "en": "Access denied", "zh": "无权访问"},
    "forbidden_text": {"vi": "Tài khoản của bạn không được phép thực hiện thao tác này.",
                       "en": "Your account is not allowed to do this.", "zh": "您的账户无权执行此操作。"},
    "users": {"vi": "Người dùng", "en": "Users", "zh": "用户"},
    "create_user": {"vi": "Tạo người dùng", "en": "Create user", "zh": "创建用户"},
    "role": {"vi": "Vai trò", "en": "Role", "zh": "角色"},
    "state": {"vi": "Trạng thái", "en": "State", "zh": "状态"},
    "created_at": {"vi": "Ngày tạo", "en": "Created", "zh": "创建时间"},
    "active": {"vi": "Đang hoạt động", "en": "Active", "zh": "启用"},
    "disabled": {"vi": "Đã khóa", "en": "Disabled", "zh": "已停用"},
    "disable": {"vi": "Khóa", "en": "Disable", "zh": "停用"},
    "reset_password": {"vi": "Đặt lại mật khẩu", "en": "Reset password", "zh": "重置密码"},
    "new_password": {"vi": "Mật khẩu mới (ít nhất 12 ký tự)", "en": "New password (12 characters or more)",
                     "zh": "新密码（至少12个字符）"},
    "role_inspector": {"vi": "Cán bộ kiểm tra", "en": "Inspector", "zh": "查验员"},
    "role_supervisor": {"vi": "Giám sát viên", "en": "Supervisor", "zh": "主管"},
    "role_model_engineer": {"vi": "Kỹ sư mô hình", "en": "Model engineer", "zh": "模型工程师"},
    "role_admin": {"vi": "Quản trị viên", "en": "Administrator", "zh": "管理员"},
    "done_created": {"vi": "Đã tạo người dùng.", "en": "User created.", "zh": "用户已创建。"},
    "done_disabled": {"vi": "Đã khóa người dùng.", "en": "User disabled.", "zh": "用户已停用。"},
    "done_password": {"vi": "Đã đặt lại mật khẩu.", "en": "Password reset.", "zh": "密码已重置。"},
    "password_too_short": {"vi": "Mật khẩu phải có ít nhất 12 ký tự.", "en": "Passwords need at least 12 characters.",
                           "zh": "密码至少需要12个字符。"},
    "password_too_long": {"vi": "Mật khẩu quá dài.", "en": "That password is too long.", "zh": "密码过长。"},
    "invalid_username": {"vi": "Tên đăng nhập gồm 3-32 ký tự: chữ thường, số, dấu chấm, gạch ngang, gạch dưới.",
                         "en": "Usernames are 3-32 characters: lowercase letters, digits, '.', '-' or '_'.",
                         "zh": "用户名为3-32个字符：小写字母、数字、“.”、“-”或“_”。"},
    "invalid_role": {"vi": "Vai trò không hợp lệ.", "en": "Unknown role.", "zh": "角色无效。"},
    "user_exists": {"vi": "Tên đăng nhập đã tồn tại.", "en": "That username is taken.", "zh": "用户名已存在。"},
    "no_such_user": {"vi": "Không có người dùng này.", "en": "No such user.", "zh": "无此用户。"},
    "cannot_disable_self": {"vi": "Không thể tự khóa tài khoản của mình.", "en": "You cannot disable your own account.",
                            "zh": "不能停用自己的账户。"},
}


def translator(lang: str) -> dict[str, str]:
    """All UI strings in ``lang`` (Vietnamese when the language is unknown)."""
    lang = lang if lang in LANGUAGES else "vi"
    return {key: texts[lang] for key, texts in TEXT.items()}
